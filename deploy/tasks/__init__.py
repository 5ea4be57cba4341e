"""Invoke tasks, one module per concern. Each module exports TASKS, the list tasks.py adds."""
