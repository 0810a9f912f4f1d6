"""Everything a training recipe needs about one run, loaded lazily and shared by every recipe.

A recipe receives a :class:`RunContext` and reads ``ctx.cfg``, ``ctx.train_examples``,
``ctx.load_model()``... Each piece is built on first use, so a recipe that never needs the
transformers tokenizer never pays for it, and failures surface with a message that names the
file or setting involved.
"""

from __future__ import annotations

import functools
import itertools
import logging
from pathlib import Path
from typing import Any

from studio.core.config import RunConfig
from studio.core.errors import DataError, ModelError
from studio.core.models import REPO_ROOT
from studio.worker.events import Events

log = logging.getLogger("studio.worker")

#: Folder that holds ``resources/`` (checkout or installed); relative resource paths resolve here too.
PROJECT_ROOT = REPO_ROOT


def resolve_path(path: str) -> Path:
    """A file or folder named in a config: as given, else relative to the Studio checkout.

    Presets say ``resources/demo-model``; that should work whichever folder the worker runs in.
    """
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    candidate = PROJECT_ROOT / p
    return candidate if candidate.exists() else p


def resolve_model_path(path: str) -> Path:
    """A model folder from a local path or a hub id already in the Hugging Face cache."""
    p = resolve_path(path)
    if p.is_dir():
        return p
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(path, local_files_only=True))
    except Exception:
        raise ModelError(f"model {path!r} is neither a folder nor a model in the Hugging Face cache",
                         "set model.path to a model folder (with config.json and tokenizer.json) "
                         "or download the model first") from None


class RunContext:
    """One run's config, folders, events, data, tokenizer, model loader and accelerator.

    Attributes:
        cfg: the validated run configuration.
        run_dir: the run folder (config.yaml, events.jsonl, checkpoints/, final/).
        events: where the recipe reports progress (main process only writes).
        stop_requested: set by the SIGTERM/SIGINT handler; recipes check it after each step,
            save a checkpoint and return ``"stopped"``.
        resume_from: a checkpoint folder to restore, or ``None`` for a fresh start.
    """

    def __init__(self, cfg: RunConfig, run_dir: str | Path, events: Events | None = None,
                 resume_from: str | Path | None = None) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.events = events or Events(None, stdout=None)
        self.stop_requested = False
        self.resume_from = Path(resume_from) if resume_from else None
        self.checkpoints_dir = self.run_dir / "checkpoints"
        self.final_dir = self.run_dir / "final"
        self._hf_tokenizer = None
        self._file_rows: dict[str, tuple[int, int]] = {}  # setting -> (bad rows, rows in the file)
        self._text_sources: dict = {}  # setting -> TextSource or None
        #: start-up phase end times (see ``studio.worker.main.STARTUP``), sent with ``started``
        self.startup: dict = {}

    # -- model and tokenizer ------------------------------------------------------------

    @functools.cached_property
    def model_path(self) -> Path:
        """The resolved model folder."""
        return resolve_model_path(self.cfg.model.path)

    @functools.cached_property
    def tokenizer(self):
        """The core :class:`~studio.core.tokenizer.Tokenizer` used for every training tensor."""
        from studio.core.tokenizer import load_tokenizer

        return load_tokenizer(str(self.model_path))

    @functools.cached_property
    def template(self):
        """The chat template in use (:class:`~studio.core.templates.ResolvedTemplate`)."""
        from studio.core.templates import resolve_template

        resolved = resolve_template(self.tokenizer, self.cfg.model.template)
        for text in getattr(resolved, "warnings", None) or []:
            self.events.warning("template", text)
        return resolved

    @functools.cached_property
    def pad(self):
        """The pad token choice (:class:`~studio.core.encoding.PadChoice`)."""
        from studio.core.encoding import choose_pad_token

        choice = choose_pad_token(self.tokenizer, self.cfg.data.pad_token)
        if getattr(choice, "message", ""):
            self.events.log(choice.message)
        return choice

    def encode_options(self, **changes: Any):
        """:class:`~studio.core.encoding.EncodeOptions` from the config (fields may be overridden)."""
        from studio.core.encoding import options_for

        return options_for(self.cfg, **changes)

    def encoder(self, **changes: Any):
        """A core :class:`~studio.core.encoding.Encoder` for this run's tokenizer and options."""
        from studio.core.encoding import Encoder

        return Encoder(self.tokenizer, self.encode_options(**changes))

    def hf_tokenizer(self):
        """A transformers tokenizer with the same chat template and pad token as core encoding.

        Used for TRL trainers, generation and saving; training tensors of the SFT recipe
        always come from core encoding. Built once per run.
        """
        if self._hf_tokenizer is None:
            self._hf_tokenizer = self._make_hf_tokenizer()
        return self._hf_tokenizer

    def _make_hf_tokenizer(self):
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(self.model_path), trust_remote_code=self.cfg.model.trust_remote_code)
        tok.chat_template = self.template.source
        if self.pad.token:
            tok.pad_token = self.pad.token
        tok.padding_side = self.cfg.data.padding_side
        return tok

    # -- device -------------------------------------------------------------------------

    @functools.cached_property
    def accelerator(self):
        """The :class:`accelerate.Accelerator` (one per process; mixed precision from the config)."""
        from studio.worker.device import make_accelerator

        return make_accelerator(self.cfg)

    @property
    def device(self):
        return self.accelerator.device

    @functools.cached_property
    def precision(self) -> str:
        """``"fp32"``, ``"bf16"`` or ``"fp16"``: the config's choice with ``auto`` resolved."""
        from studio.worker.device import resolve_precision

        return resolve_precision(self.cfg.train.precision, self.device)

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def load_model(self):
        """The base model on this run's device and precision with the fine-tuning method applied."""
        from studio.worker.checkpoint import start_from
        from studio.worker.methods import load_model

        return start_from(self, load_model(self.cfg, self.model_path, self.device, self.precision))

    # -- events every recipe sends ------------------------------------------------------

    def mark(self, phase: str) -> None:
        """Record that a start-up phase (``data_done``, ``model_done``) ended now."""
        import time

        self.startup[phase] = round(time.time(), 3)

    def emit_started(self, *, params_total: int, params_trainable: int, train_rows: int, eval_rows: int,
                     max_steps: int, **extra: Any) -> None:
        """The run's ``started`` event: resolved config, sizes, device and step count."""
        from studio.core.config import to_dict

        self.events.emit("started", config=to_dict(self.cfg), params_total=int(params_total),
                         params_trainable=int(params_trainable), train_rows=int(train_rows),
                         eval_rows=int(eval_rows), device=str(self.device), max_steps=int(max_steps),
                         precision=self.precision, method=self.cfg.method.name, objective=self.cfg.train.objective,
                         world_size=self.accelerator.num_processes,
                         resumed_from=str(self.resume_from) if self.resume_from else None,
                         **({"startup": dict(self.startup)} if self.startup else {}), **extra)

    def emit_lints(self, encoded_rows: list | None = None) -> None:
        """Preflight lints as ``warning`` events; a lint of severity ``error`` stops the run.

        The lints live in :mod:`studio.core.preflight`; without that module this is a no-op.
        """
        try:
            from studio.core import preflight
        except ImportError:
            log.info("studio.core.preflight is not available; no lints")
            return
        from studio.core.errors import StudioError

        for lint in preflight.lints(self.cfg, self.tokenizer, encoded_rows, template_text=self.template.source):
            if lint.severity == "error":
                raise StudioError(lint.message, lint.hint)
            self.events.warning(lint.code, lint.message, hint=lint.hint)

    # -- data ---------------------------------------------------------------------------

    @functools.cached_property
    def _split(self) -> tuple[list, list]:
        from studio.core.data import split

        train = self._load(self.cfg.data.train, "data.train")
        if self.cfg.data.eval:
            return train, self._load(self.cfg.data.eval, "data.eval")
        if self.cfg.data.eval_fraction <= 0:
            return train, []
        return split(train, self.cfg.data.eval_fraction, self.cfg.data.seed)

    @property
    def train_examples(self) -> list:
        """Usable training rows (after validation and the train/eval split)."""
        return self._split[0]

    def sample_examples(self, count: int) -> list:
        """Up to ``count`` training rows spread over the data, for the checks of an export. Raw text read
        as a stream gives its first ``count`` documents: an export never reads the corpus whole."""
        source = self.text_source("data.train")
        if source is not None:
            docs = source.examples()
            try:
                return list(itertools.islice(docs, count))
            finally:
                docs.close()
        examples = self.train_examples
        return examples[::max(1, len(examples) // max(count, 1))][:count]

    @property
    def eval_examples(self) -> list:
        """Evaluation rows: the eval file, or the held-out share of the training rows."""
        return self._split[1]

    @functools.cached_property
    def general_examples(self) -> list:
        """Rows of ``data.general_eval`` (general text for forgetting checks); empty if unset."""
        if not self.cfg.data.general_eval:
            return []
        return self._load(self.cfg.data.general_eval, "data.general_eval", format="auto")

    def _load(self, path: str, setting: str, format: str | None = None) -> list:
        from studio.core.data import load_examples

        resolved = resolve_path(path)
        if not resolved.exists():
            raise DataError(f"{setting}: the file {path} does not exist",
                            f"check the path in {setting} (it may have been moved or deleted)")
        report = load_examples(str(resolved), format=format or self.cfg.data.format,
                               columns=self.cfg.data.columns or None, text_split=self.cfg.data.text_split)
        self.encoder().screen_report(report)  # rows whose roles the chat template refuses (data.system_message)
        self._report_bad_rows(report, setting)
        if not report.examples:
            raise DataError(f"{setting}: {path} holds no usable rows", report.summary())
        return report.examples

    def text_source(self, setting: str = "data.train"):
        """``setting``'s file as a :class:`~studio.core.text_stream.TextSource` when it is raw text read
        as a stream (continued pre-training on a corpus that need not fit in memory), else ``None``."""
        if setting not in self._text_sources:
            from studio.core.text_stream import open_text

            path = getattr(self.cfg.data, setting.split(".")[1])
            resolved = resolve_path(path) if path else None
            fmt = self.cfg.data.format if setting != "data.general_eval" else "auto"
            self._text_sources[setting] = open_text(resolved, fmt, self.cfg.data.columns or None,
                                                    self.cfg.data.text_split) if resolved else None
        return self._text_sources[setting]

    def check_text_rows(self, source, setting: str) -> None:
        """After a pass over a :class:`~studio.core.text_stream.TextSource`: its bad rows reported or refused
        as those of a file loaded whole are (``data.skip_bad_rows``, ``data.max_skipped``)."""
        self._report_bad_rows(source.report(), setting, source.bad_count)
        if not source.usable:
            raise DataError(f"{setting}: {source.path} holds no usable rows", source.report().summary())

    def check_skipped(self, setting: str = "data.train", skipped: int = 0) -> None:
        """Refuse to train when the bad rows of ``setting``'s file plus ``skipped`` more rows (left without
        a loss token, undesirable under SFT...) exceed ``data.max_skipped`` of the file's rows, so a
        run never ends "completed" after quietly training on a fraction of its data.

        Raises:
            DataError: naming the counts, the threshold and what to do.
        """
        from studio.core.data_fit import skipped_problem

        bad, total = self._file_rows.get(setting, (0, 0))
        problem = skipped_problem(bad + skipped, total, self.cfg.data.max_skipped, setting)
        if problem:
            raise DataError(problem.message, problem.hint)

    def _report_bad_rows(self, report, setting: str, count: int | None = None) -> None:
        """``count``: bad rows in all, when ``report`` keeps only the first ones (a file read as a stream)."""
        bad = report.bad_rows
        count = len(bad) if count is None else count
        self._file_rows[setting] = (count, report.total_rows)
        if not count:
            return
        listed = "; ".join(f"row {b.row}: {b.reason}" for b in bad[:20])
        more = f" (and {count - 20} more)" if count > 20 else ""
        if not self.cfg.data.skip_bad_rows:
            raise DataError(f"{setting}: {count} bad row(s) in {report.path}: {listed}{more}",
                            "fix those rows, or set data.skip_bad_rows=true to train without them")
        self.events.warning("bad_rows", f"{setting}: skipped {count} bad row(s) in {report.path}: {listed}{more}",
                            rows=[b.row for b in bad])
        if setting == "data.train":
            self.check_skipped(setting)
