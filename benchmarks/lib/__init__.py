"""What the benchmark scripts share: case sets, scoring, baselines, the Pt data.

Research apparatus, not part of the installed package. Scripts in ``benchmarks/`` import
it as ``lib`` (their folder is on ``sys.path``); tests as ``benchmarks.lib``.
"""
