"""For every test folder (tests/ and bench/tests/): SIGINT handled as Python's default even when the
suite was started in the background (`nohup make test &`). The shell leaves it ignored there, and
every process a test starts would inherit that, so the tests that send Ctrl-C would see it lost. A
handled signal, unlike an ignored one, is reset to the default in each program the tests exec."""

import signal

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
