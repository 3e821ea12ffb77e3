"""Regenerate the example PDFs (PEDro scale + three made-up trial reports) with fpdf2.

Run from the repository root: ``python tests/data/make_example_pdfs.py``. The PDFs are committed;
this script documents where they came from. The trials are fictional.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fpdf import FPDF

ROOT = Path(__file__).resolve().parents[2]

PEDRO = """PEDro scale
1. Eligibility criteria were specified (not scored).
2. Subjects were randomly allocated to groups.
3. Allocation was concealed.
4. The groups were similar at baseline regarding the most important prognostic indicators.
5. There was blinding of all subjects.
6. There was blinding of all therapists who administered the therapy.
7. There was blinding of all assessors who measured at least one key outcome.
8. Measures of at least one key outcome were obtained from more than 85% of the subjects
initially allocated to groups.
9. All subjects for whom outcome measures were available received the treatment or control
condition as allocated or, where this was not the case, data for at least one key outcome was
analysed by intention to treat.
10. The results of between-group statistical comparisons are reported for at least one key
outcome.
11. The study provides both point measures and measures of variability for at least one key
outcome.
Criteria 2-11 score one point each; the total score ranges from 0 to 10."""

PAPERS = {
    "knee-exercise-trial": """Home exercise versus usual care for knee osteoarthritis: a randomised trial
Methods: 120 adults aged 50-80 with knee osteoarthritis (eligibility criteria listed in Table 1)
were randomly allocated by computer-generated sequence; allocation was concealed in sealed opaque
envelopes. Groups were similar at baseline. Assessors measuring pain were blinded; participants
and therapists were not. Outcomes were obtained from 112 of 120 participants (93%). Analysis was
by intention to treat. Between-group difference in pain at 12 weeks: -1.2 points (95% CI -1.9 to
-0.5).""",
    "back-pain-massage": """Massage for chronic low back pain: a pilot study
Methods: 40 volunteers with chronic low back pain received weekly massage or a booklet. Groups
were formed by order of enrolment. Outcomes at 6 weeks were available for 28 participants. Mean
pain fell from 6.1 to 4.0 in the massage group. No between-group statistics are reported.""",
    "stroke-gait-training": """Treadmill gait training after stroke: randomised controlled trial
Methods: 64 inpatients after a first stroke (inclusion criteria stated) were randomised using
a central telephone service (concealed allocation). Baseline characteristics were similar. The
physiotherapists could not be blinded; the assessor of walking speed was blinded. 60 of 64
patients (94%) completed follow-up; data were analysed by intention to treat. Walking speed
improved more with treadmill training (mean difference 0.12 m/s, SD 0.2; p = 0.01).""",
}


def write_pdf(path: Path, title: str, text: str) -> None:
    """Write ``text`` as a one-page A4 PDF with ``title`` as metadata."""
    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=UTC))
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, text)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))


if __name__ == "__main__":
    write_pdf(ROOT / "assistants/files/pedro-scale.pdf", "PEDro scale", PEDRO)
    for name, text in PAPERS.items():
        write_pdf(ROOT / f"pipelines/data/papers/{name}.pdf", name, text)
