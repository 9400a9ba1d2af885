"""Course and machine tooling: no lesson teaches it, and the student version keeps it whole.

assignment.py writes the student version of the repository (`python -m tinyrev.tools.assignment`);
bench.py measures training and decoding speed on this machine (`python -m tinyrev.tools.bench`).
"""
