"""Evaluation subcommands (filled in by the evaluation work)."""

def add_eval_commands(sub, add_model_args, make_settings) -> None:
    return None
