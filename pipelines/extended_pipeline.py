"""The README's "Extend the platform" example: reuse the platform's components from their
YAML files and wire in a team's own component (``components/data_quality.py``).

    data (platform) → data_quality (yours) → normalize (platform)
"""

from pathlib import Path

from components.data_quality import data_quality
from kfp import compiler, components, dsl

COMPONENTS = Path(__file__).resolve().parents[1] / "components"
data_op = components.load_component_from_file(str(COMPONENTS / "data.yaml"))
normalize_op = components.load_component_from_file(str(COMPONENTS / "normalize.yaml"))


@dsl.pipeline(name="mlplatform-extended", description="Platform data + a data-quality gate.")
def extended_pipeline(config_json: str, min_rows: int = 100) -> None:
    d = data_op(config_json=config_json)
    q = data_quality(dataset=d.outputs["dataset"], min_rows=min_rows, max_missing_share=0.01)
    n = normalize_op(config_json=config_json, dataset=d.outputs["dataset"])
    n.after(q)  # normalize only data that passed the team's check


if __name__ == "__main__":
    out = Path(__file__).with_name("extended_pipeline.yaml")
    compiler.Compiler().compile(extended_pipeline, str(out))
    print(out)
