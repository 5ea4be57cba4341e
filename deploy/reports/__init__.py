"""Pure report builders: the stats table, the HTML history report, the on-call handoff, windows.

Everything takes plain data and returns text; the invoke tasks gather the data over SSH. One module
per report; `from deploy import reports` reaches them all.
"""

from __future__ import annotations

from deploy.reports.handoff import BACKUP_OVERDUE_AFTER as BACKUP_OVERDUE_AFTER
from deploy.reports.handoff import MAINTENANCE_HOURS as MAINTENANCE_HOURS
from deploy.reports.handoff import MAINTENANCE_START_HOUR as MAINTENANCE_START_HOUR
from deploy.reports.handoff import QUARTERLY_DRILL_MONTHS as QUARTERLY_DRILL_MONTHS
from deploy.reports.handoff import SUNDAY as SUNDAY
from deploy.reports.handoff import VERIFICATION_OVERDUE_AFTER as VERIFICATION_OVERDUE_AFTER
from deploy.reports.handoff import docs_links as docs_links
from deploy.reports.handoff import first_sunday as first_sunday
from deploy.reports.handoff import handoff_markdown as handoff_markdown
from deploy.reports.handoff import known_issues_list as known_issues_list
from deploy.reports.handoff import last_maintenance_window as last_maintenance_window
from deploy.reports.handoff import maintenance_record_lines as maintenance_record_lines
from deploy.reports.handoff import maintenance_window as maintenance_window
from deploy.reports.handoff import markdown_section as markdown_section
from deploy.reports.handoff import next_maintenance_window as next_maintenance_window
from deploy.reports.handoff import older_than as older_than
from deploy.reports.handoff import overdue_note as overdue_note
from deploy.reports.handoff import parse_maintenance_record as parse_maintenance_record
from deploy.reports.history import COLOURS as COLOURS
from deploy.reports.history import Series as Series
from deploy.reports.history import history_charts as history_charts
from deploy.reports.history import history_html as history_html
from deploy.reports.history import svg_line_chart as svg_line_chart
from deploy.reports.stats import stats_text as stats_text
from deploy.reports.steps import row_count_changes as row_count_changes
from deploy.reports.steps import steps_table as steps_table
from deploy.reports.text import fmt_bytes as fmt_bytes
from deploy.reports.text import fmt_ms as fmt_ms
from deploy.reports.text import fmt_percent as fmt_percent
from deploy.reports.text import md_cell as md_cell
from deploy.reports.text import one_line as one_line
from deploy.reports.text import shorten as shorten
from deploy.reports.text import table as table
