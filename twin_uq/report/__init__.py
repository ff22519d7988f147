"""Self-contained HTML reports: one patient for a clinician, the cohort for a statistician.

``tq.report.patient(post, "P07", "p07.html")`` and ``tq.report.cohort(post, "cohort.html")``
write single HTML files with inline CSS and SVG figures, no scripts and no network
access, readable on screen and printable.
"""

from twin_uq.report.cohort import cohort as cohort
from twin_uq.report.patient import patient as patient
from twin_uq.report.render import PDFUnavailableWarning as PDFUnavailableWarning
