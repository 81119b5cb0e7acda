"""Payment fraud models: build gold.fraud_features from the labelled history, evaluate a model against the rules
baseline and the champion on the later attempts (PR-AUC, recall at a 1 % false-positive rate, per fraud pattern),
register it in MLflow (alias `challenger`) and promote it to `champion` only when its PR-AUC beats the champion's.
Prints the evaluation table."""

from __future__ import annotations

import sys
from collections.abc import Sequence

if __package__ in (None, ""):
    sys.path.insert(0, __file__.rsplit("/jobs/", 1)[0])

from lakehouse.job import job_context, parser, require_tables, run_main
from lakehouse.ml.fraud_history import TABLES
from lakehouse.ml.fraud_models import MAX_FPR, MODEL_KINDS, format_evaluation, make_model
from lakehouse.ml.fraud_training import DEFAULT_MAX_ROWS, MODEL_NAME, bounded_attempts, train_and_register
from lakehouse.ml.registry import Spec, parse_params
from transformations.gold.fraud_features import payment_features

FEATURE_TABLE = "gold.fraud_features"


def main(argv: Sequence[str] | None = None) -> None:
    p = parser(__doc__)
    p.add_argument("--model", choices=sorted(MODEL_KINDS), default="gradient_boosting")
    p.add_argument("--params", help="the model's parameters as a JSON object")
    p.add_argument("--test-fraction", type=float, default=0.3, help="the later share of the history tested on")
    p.add_argument("--max-fpr", type=float, default=MAX_FPR, help="false-positive rate recall is read at")
    p.add_argument("--min-improvement", type=float, default=0.0,
                   help="fraction by which the challenger's PR-AUC must beat the champion's")
    p.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, help="attempts read into the trainer at most")
    args = p.parse_args(argv)
    spec = Spec(args.model, parse_params(args.params))
    make_model(spec.kind, spec.params)  # a bad configuration fails before any work
    require_tables(*TABLES.values(), hint="run the fraud_history job first")
    ctx = job_context("fraud_training")
    frames = {key: ctx.tables.read(table) for key, table in TABLES.items()}
    sources = {table: ctx.tables.version(table) for table in TABLES.values()}
    ctx.tables.overwrite(payment_features(frames["attempts"], frames["clicks"], frames["accounts"]), FEATURE_TABLE)
    ctx.tables.register(FEATURE_TABLE)
    version = ctx.tables.version(FEATURE_TABLE)
    features = ctx.tables.read(FEATURE_TABLE, version=version)
    attempts, fraction = bounded_attempts(features, args.max_rows)
    result = train_and_register(
        attempts, spec, settings=ctx.settings, feature_table=FEATURE_TABLE, feature_version=version,
        feature_frame=features, sources=sources, test_fraction=args.test_fraction,
        min_improvement=args.min_improvement, max_fpr=args.max_fpr, sample_fraction=fraction)
    print(format_evaluation(result.evaluation))
    verdict = "champion" if result.promoted else "challenger only"
    print(f"{MODEL_NAME} v{result.version} ({spec.label}): {verdict} - {result.reason}; "
          f"{result.scoring_us_per_attempt:.1f} us per attempt scored in one batch")


if __name__ == "__main__":
    sys.exit(run_main(main))
