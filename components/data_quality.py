"""The README's "Extend the platform" example: a team's own component.

It checks the training set the ``data`` component produced (row count, missing values) and
fails the task with the reason when the data is not fit to train on.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from mlplatform.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def data_quality(
    dataset: Input[Dataset], min_rows: int, max_missing_share: float, report: Output[Metrics]
) -> None:
    """Fail unless the dataset has ≥ min_rows rows and ≤ max_missing_share missing cells."""
    import pyarrow.parquet as pq

    # One thread: Arrow's thread pool, still running when the task's interpreter exits, once
    # aborted a finished task ("terminate called without an active exception").
    df = pq.read_table(dataset.path, use_threads=False).to_pandas(use_threads=False)
    missing = float(df.isna().mean().mean()) if len(df) else 1.0
    report.log_metric("rows", len(df))
    report.log_metric("missing_share", missing)
    if len(df) < min_rows or missing > max_missing_share:
        raise ValueError(
            f"data quality: {len(df)} rows (need ≥ {min_rows}), "
            f"missing share {missing:.3f} (allowed ≤ {max_missing_share})"
        )
