"""Side-by-side benchmarks: edgeslim's compressed artifacts vs what users would ship without it.

Run ``python -m benchmarks.run --help``; methodology in benchmarks/README.md.
"""
