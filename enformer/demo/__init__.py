"""`enformer demo`: the workflows end to end, offline, on a synthetic genome with planted motifs.

run     `run_demo(out_dir)`: genome → data → train → export → evaluate → predict → attribute →
        variants, each step resumable, calling the library's workflows (never the CLI)
report  the demo's index.html
"""

from enformer.demo.run import (
    DEFAULT_OUT_DIR,
    FULL,
    QUICK,
    REPORT_FILE,
    STATE_FILE,
    DemoSettings,
    run_demo,
    write_motif_vcf,
)

__all__ = [
    'DEFAULT_OUT_DIR',
    'FULL',
    'QUICK',
    'REPORT_FILE',
    'STATE_FILE',
    'DemoSettings',
    'run_demo',
    'write_motif_vcf',
]
