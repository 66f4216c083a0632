"""What reading ECG-cart files (``edge.readers.cart_formats``, ecgdatakit) adds to the device's resident memory.

Each measurement is a fresh process that loads the default bundle and classifies one window (the state of
a runtime), reads its resident memory (``VmRSS``), then reads one file through ``edge.readers.records`` as
``ecg-edge classify`` does and reads ``VmRSS`` again; it also times the read. Files: a real PTB-XL record
(WFDB, read through ecgdatakit with the ``wfdb`` package blocked, as on a board), the same record written
as MFER and as HL7 aECG (``tests/cart_writers.py``), and pydicom's real ``waveform_ecg.dcm`` (DICOM needs
pydicom). ``ecg-edge run`` never imports ecgdatakit: the live runtime's memory is unchanged. Writes the
``bench_cart_formats`` section of BENCHMARKS.md.

    python bench/bench_cart_formats.py --data ../shared/data --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from report import REPO, machine, machine_line, write_section  # bench/report.py, beside this script

CHILD = r"""
import json, sys, time
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS'):
            return int(line.split()[1]) / 1024
if sys.argv[2] == 'wfdb-less':
    sys.modules['wfdb'] = None
from edge.runtime.engine import Classifier
from firmware_bridge.synthetic import synthesize
clf = Classifier.from_bundle('edge/bundles/default')
clf.classify_window(synthesize(rhythm='sinus', fs=500, seed=1, duration_s=10.0), 500)
before = rss()
ms = 0.0
if sys.argv[1] != '-':
    from edge.readers.records import read_recording
    t0 = time.perf_counter()
    read_recording(sys.argv[1])
    ms = (time.perf_counter() - t0) * 1e3
print(json.dumps({'before': before, 'after': rss(), 'ms': ms,
                  'ecgdatakit': 'ecgdatakit' in sys.modules, 'pydicom': 'pydicom' in sys.modules}))
"""


def _writers():
    spec = importlib.util.spec_from_file_location("cart_writers", REPO / "tests" / "cart_writers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", help="folder with ptbxl/ (default ../shared/data)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    import pydicom.data
    import wfdb

    record = Path(args.data) / "ptbxl" / "records500" / "00000" / "00001_hr"
    rec = wfdb.rdrecord(str(record))
    writers = _writers()
    tmp = Path(tempfile.mkdtemp())
    files = {
        "none (no file read)": None,
        "WFDB via ecgdatakit (PTB-XL 00001_hr)": f"{record}.hea",
        "MFER (same record)": writers.write_mfer(tmp / "a.mwf", rec.p_signal.T, rec.fs, list(rec.sig_name)),
        "HL7 aECG (same record)": writers.write_hl7_aecg(
            tmp / "b.xml", rec.p_signal.T, rec.fs, list(rec.sig_name)
        ),
        "DICOM (pydicom's waveform_ecg.dcm)": Path(pydicom.data.__file__).parent
        / "test_files"
        / "waveform_ecg.dcm",
    }
    rows = []
    for name, path in files.items():
        runs = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, "-c", CHILD, str(path or "-"), "wfdb-less"], cwd=REPO,
                                 capture_output=True, text=True, check=True).stdout  # fmt: skip
            runs.append(json.loads(out.strip().splitlines()[-1]))
        delta = [r["after"] - r["before"] for r in runs]
        rows.append((name, statistics.median(r["before"] for r in runs), statistics.median(delta),
                     max(delta), statistics.median(r["ms"] for r in runs)))  # fmt: skip
        print(
            f"{name}: +{statistics.median(delta):.1f} MiB, read {statistics.median(r['ms'] for r in runs):.0f} ms"
        )
    lines = [
        "## ECG-cart formats on the device (`bench/bench_cart_formats.py`)",
        "",
        f"`python bench/bench_cart_formats.py --repeats {args.repeats}`: resident memory of a process holding the",
        "default bundle (one window classified) before and after `edge.readers.records.read_recording` of one file, as",
        "`ecg-edge classify` does; `wfdb` blocked, so WFDB goes through ecgdatakit as on a board installed with",
        f"`.[edge]`. Median of N = {args.repeats} fresh processes each. `ecg-edge run` never imports ecgdatakit.",
        "",
        "| file read | RSS before (MiB) | added by the read (MiB), median / max | read time (ms) |",
        "|---|---:|---:|---:|",
    ]
    for name, before, med, worst, ms in rows:
        lines.append(f"| {name} | {before:.1f} | {med:+.1f} / {worst:+.1f} | {ms:.0f} |")
    lines += ["", machine_line(machine())]
    write_section(REPO / "BENCHMARKS.md", "bench_cart_formats", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
