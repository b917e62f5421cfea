"""The benchmark suite, in one place: the harness (harness.py: data sets, the job grid, one
fit per job in its own process, torchrun sharing) and its tables (tables.py: bench.md and the
per-head records of the zoo's cards). ``vgfm-bayes bench`` and the scripts in benchmarks/ use
these; they hold no fitting or scoring logic of their own."""

from .harness import (
    DEFAULT_DATASETS,
    QUICK,
    SIMULATOR,
    Task,
    bench_task,
    evaluate,
    evaluate_posterior_mean,
    expand_datasets,
    make_jobs,
    posterior_mean_params,
    run_bench,
    run_job,
    write_tables,
)
from .tables import (
    LEVEL,
    SIMULATORS,
    halfwidth_rel,
    head_records,
    loo_summary,
    posterior_mean_w1,
    summarise,
)

__all__ = [
    "DEFAULT_DATASETS",
    "LEVEL",
    "QUICK",
    "SIMULATOR",
    "SIMULATORS",
    "Task",
    "bench_task",
    "evaluate",
    "evaluate_posterior_mean",
    "expand_datasets",
    "halfwidth_rel",
    "head_records",
    "loo_summary",
    "make_jobs",
    "posterior_mean_params",
    "posterior_mean_w1",
    "run_bench",
    "run_job",
    "summarise",
    "write_tables",
]
