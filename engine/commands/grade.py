"""``layerlab grade``: grade a class's submissions against a lab; one CSV row per file.

Exit status 0 whenever grading ran, whatever the files held (a bad file gets a row that says so);
2 for bad arguments or a lab that cannot be read.
"""
from __future__ import annotations

import sys
from pathlib import Path

from engine.cli_support import EXIT_OK, BadInput, check_output_file, positive_int

HELP = "grade submissions against a lab: a CSV of points, flags and notes, and an HTML report"


def add_arguments(parser) -> None:
    parser.add_argument("lab", help="the lab file (.json or .layerlab-lab) or a bundled lab's id")
    parser.add_argument("submissions", nargs="+",
                        help="submission files, or folders (every file in them is graded)")
    parser.add_argument("--csv", required=True, help="the grades CSV to write")
    parser.add_argument("--jobs", type=positive_int, default=1, help="processes to grade in (default 1)")
    parser.add_argument("--reproduce", action="store_true",
                        help="retrain every submission from its graph, settings and seed and flag results "
                             "that do not come out the same")
    parser.add_argument("--report", help="also write an HTML report (score distribution, missed steps, "
                                         "every student's goals)")


def _output(path: str, what: str) -> Path:
    """Checked before grading, which can take minutes: a read-only folder failed only after it."""
    return check_output_file(path, f"--{what}")


def run(args) -> int:
    from engine.labs.format import resolve_lab
    from engine.labs.grade import grade_class, submission_paths, write_csv
    from engine.labs.report import write_report

    csv_path = _output(args.csv, "csv")
    report_path = _output(args.report, "report") if args.report else None
    lab = resolve_lab(args.lab)
    paths = submission_paths(args.submissions, skip=[p for p in (csv_path, report_path) if p])
    if not paths:
        raise BadInput(f"no submissions found in {', '.join(args.submissions)}.")
    missing = [a for a in args.submissions if not Path(a).exists()]
    if missing:  # a typo'd hand-in folder graded as one "unreadable" row looked like a success
        raise BadInput(f"{missing[0]}: no such file or folder.")

    done = []

    def progress(row) -> None:  # one stderr line per file as it is done: grading may take a while
        done.append(row)
        sys.stderr.write(f"[{len(done)}/{len(paths)}] {Path(row.file).name}: {row.status}\n")
        sys.stderr.flush()

    rows = grade_class(lab, paths, jobs=args.jobs, reproduce=args.reproduce, on_row=progress)
    width = max(len(p.name) for p in paths)
    for row in rows:  # the table, once the class-wide flags (same weights, two files) are known
        score = f"{row.total:g}/{lab.max_points:g}" if row.graded else "-"
        flags = f"  flags: {', '.join(f.code for f in row.flags)}" if row.flags else ""
        why = f"  {row.message}" if row.message else ""
        who = (row.student or row.student_id)[:30]
        print(f"{Path(row.file).name:<{width}}  {row.status:<10} {who:<30} {score:>5}{flags}{why}")
    write_csv(csv_path, lab, rows)
    if report_path:
        write_report(report_path, lab, rows, reproduce=args.reproduce)
    graded = sum(1 for r in rows if r.graded)
    flagged = sum(1 for r in rows if r.flags)
    wrote = f"{csv_path}" + (f" and {report_path}" if report_path else "")
    print(f"Graded {graded} of {len(rows)} files ({len(rows) - graded} not gradable, {flagged} flagged); wrote {wrote}.")
    return EXIT_OK
