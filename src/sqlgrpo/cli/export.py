"""`sqlgrpo export`: a trained run as a self-contained Hugging Face folder, optionally a GGUF
file and an Ollama Modelfile."""

from __future__ import annotations

import argparse
import sys

from sqlgrpo.models.gguf import GGUF_TYPES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` command."""
    p = subparsers.add_parser(
        "export",
        help="export a trained run: merged HF folder (+ GGUF and Ollama Modelfile)",
        description="Writes OUT with the model (LoRA merged), tokenizer, chat template, "
        "generation config, the trained prompt settings (sqlgrpo_prompt.json) and a model "
        "card with the run's measured EX; loadable by AutoModelForCausalLM alone. --gguf also "
        "writes OUT/model-TYPE.gguf with llama.cpp's converter and an Ollama Modelfile.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="training run folder (or a model folder)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (new or empty)")
    p.add_argument(
        "--gguf", default=None, choices=GGUF_TYPES, help="also write a GGUF file of this type"
    )
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from sqlgrpo.models import ModelNotFoundError
    from sqlgrpo.models.export import export_model

    try:
        result = export_model(args.run_dir, args.out, gguf=args.gguf)
    except (FileExistsError, ModelNotFoundError, RuntimeError, ValueError) as exc:
        print(f"sqlgrpo export: error: {exc}", file=sys.stderr)
        return 2
    print(f"exported {args.run_dir} -> {result.out_dir}")
    if result.evaluation:
        print(f"  measured EX {result.evaluation['execution_accuracy']:.3f} (in README.md)")
    if result.gguf:
        print(f"  GGUF:      {result.gguf}")
        print(f"  Modelfile: {result.modelfile} (ollama create NAME -f {result.modelfile})")
    return 0
