"""Find and load physiological models: built-in ones by name, a user's file by path.

Built-in models live in the repository's ``models/`` folder (shipped inside the wheel as
``twin_uq/_library``). A model file is an ordinary Python module that defines exactly one
subclass of :class:`twin_uq.Model` (or several, with ``MODEL`` naming the one to use).
Built-in models are loaded by the same code path as a user's file.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path

from twin_uq.errors import InputError
from twin_uq.model.base import Model

__all__ = ["ModelLoadError", "library_dirs", "list_models", "load_model", "model_source_hash"]


class ModelLoadError(InputError):
    """A model name or file could not be turned into a :class:`Model`."""


def library_dirs() -> list[Path]:
    """Folders searched for built-in models, in order (installed wheel, then source tree)."""
    here = Path(__file__).resolve().parent.parent
    candidates = [here / "_library", here.parent / "models"]
    return [d for d in candidates if d.is_dir()]


def _model_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for folder in library_dirs():
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith("_"):
                files.setdefault(path.stem, path)
    return files


def list_models() -> dict[str, str]:
    """Built-in model names mapped to their one-line summaries."""
    return {name: load_model(name).card.summary for name in sorted(_model_files())}


def load_model(name_or_path: str | Path | Model | type[Model]) -> Model:
    """Load a model by built-in name (``"bergman_minimal"``) or from a ``.py`` file path.

    Parameters
    ----------
    name_or_path
        A built-in model name, a path to a Python file defining a :class:`Model` subclass,
        or an existing model (returned unchanged; a class is instantiated).

    Raises
    ------
    ModelLoadError
        Unknown name (close matches are listed), missing file, syntax error in the file, or
        a file that defines no (or several, without ``MODEL``) model classes.
    """
    if isinstance(name_or_path, Model):
        return name_or_path
    if isinstance(name_or_path, type) and issubclass(name_or_path, Model):
        return name_or_path()
    text = str(name_or_path)
    looks_like_path = text.endswith(".py") or "/" in text or "\\" in text
    if looks_like_path:
        path = Path(text)
        if not path.is_file():
            raise ModelLoadError(f"Model file not found: {path}")
        return _load_file(path)
    files = _model_files()
    if text not in files:
        import difflib

        close = difflib.get_close_matches(text, list(files), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ModelLoadError(
            f"Unknown model {text!r}.{hint} Built-in models: {', '.join(sorted(files))}; "
            "or pass the path of a .py file."
        )
    return _load_file(files[text])


_LOADED: dict[tuple[str, str], Model] = {}


def _load_file(path: Path) -> Model:
    source = path.read_text(encoding="utf-8")
    # Loading the same source twice must give the *same* model: compiled functions are
    # cached by model, and a fresh class per load would recompile every fit.
    cache_key = (str(path.resolve()), hashlib.sha256(source.encode()).hexdigest())
    if cache_key in _LOADED:
        return _LOADED[cache_key]
    try:
        ast.parse(source, filename=str(path))
    except SyntaxError as err:
        raise ModelLoadError(
            f"Syntax error in model file {path}, line {err.lineno}: {err.msg}"
        ) from err
    module_name = (
        f"twin_uq_user_model_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
    )
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ModelLoadError(f"Cannot import model file {path}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        sys.modules.pop(module_name, None)
        raise ModelLoadError(
            f"Model file {path} failed to import: {type(err).__name__}: {err}"
        ) from err
    chosen = getattr(module, "MODEL", None)
    if chosen is None:
        classes = [
            obj
            for obj in vars(module).values()
            if inspect.isclass(obj)
            and issubclass(obj, Model)
            and obj is not Model
            and obj.__module__ == module_name
        ]
        if len(classes) != 1:
            raise ModelLoadError(
                f"Model file {path} must define exactly one twin_uq.Model subclass (found "
                f"{len(classes)}); set MODEL = YourClass to choose."
            )
        chosen = classes[0]
    model = chosen() if isinstance(chosen, type) else chosen
    _check_declaration(model, path)
    _check_functions(model, path)
    model._source_path = str(path)  # type: ignore[attr-defined]
    _LOADED[cache_key] = model
    return model


def _check_declaration(model: Model, path: Path) -> None:
    missing = [
        attr
        for attr in ("name", "states", "parameters", "outputs", "card")
        if not hasattr(type(model), attr)
    ]
    if missing:
        raise ModelLoadError(f"Model in {path} lacks required attribute(s): {', '.join(missing)}.")
    names = model.parameter_names
    if not names:
        raise ModelLoadError(
            f"Model in {path} declares no parameters; a model needs at least one "
            "tq.Parameter to fit (parameters = (tq.Parameter(...), ...))."
        )
    if len(set(names)) != len(names):
        raise ModelLoadError(f"Model in {path} declares a parameter name twice: {names}.")
    for allo in model.allometric:
        if allo.parameter not in names:
            raise ModelLoadError(
                f"Model in {path}: allometric effect on unknown parameter {allo.parameter!r}."
            )
    if not 1 <= model.default_dose_cmt <= len(model.states):
        raise ModelLoadError(
            f"Model in {path}: default_dose_cmt={model.default_dose_cmt} outside 1..{len(model.states)}."
        )


class _Declared(dict):
    """A ``theta`` / ``covariates`` / ``inputs`` dict whose missing keys name the declaration."""

    def __init__(self, values: dict, kind: str, where: str) -> None:
        super().__init__(values)
        self.kind = kind
        self.where = where

    def __missing__(self, key: object) -> None:
        raise ModelLoadError(
            f"{self.where} uses {self.kind} {key!r}, which the model does not declare; "
            f"declared {self.kind}s: {', '.join(map(repr, self)) or '(none)'}."
        )


def _check_functions(model: Model, path: Path) -> None:
    """Trace ``y0``, ``rhs``, ``observe`` (and ``linear_system``) once on typical values.

    Catches, at load time and with the file named, what would otherwise surface as a JAX
    shape error or a bare ``KeyError`` deep inside a fit: a parameter, covariate or signal
    that is used but not declared, and functions returning arrays of the wrong shape.
    Tracing is abstract (:func:`jax.eval_shape`): nothing is computed.
    """
    import jax
    import jax.numpy as jnp

    n_states, n_outputs = len(model.states), len(model.outputs)
    typical = jnp.asarray([p.typical for p in model.parameters], dtype=float)
    covs = jnp.asarray(
        [float(model.covariate_defaults.get(c, 1.0)) for c in model.covariates], dtype=float
    )

    def call(name: str, expected: tuple[int, ...], what: str, fn, *args: object) -> None:
        where = f"Model in {path}: {name}()"
        try:
            out = jax.eval_shape(fn, *args)
        except ModelLoadError:
            raise
        except Exception as err:
            msg = " ".join(str(err).split())[:300]
            raise ModelLoadError(
                f"{where} fails on the typical parameter values: {type(err).__name__}: {msg}"
            ) from err
        shape = tuple(getattr(out, "shape", ()))
        if shape != expected:
            raise ModelLoadError(f"{where} returns shape {shape}, expected {expected}: {what}.")

    def theta(vec, where: str) -> _Declared:
        return _Declared(model.theta_dict(vec), "parameter", where)

    def y0(vec, cov):
        where = f"Model in {path}: y0()"
        c = _Declared(dict(zip(model.covariates, cov, strict=True)), "covariate", where)
        return jnp.asarray(model.y0(theta(vec, where), c))

    def rhs(vec, y):
        where = f"Model in {path}: rhs()"
        inputs = _Declared({s: jnp.zeros(()) for s in model.signals}, "signal", where)
        return jnp.asarray(model.rhs(jnp.zeros(()), y, theta(vec, where), inputs))

    def observe(vec, y):
        return jnp.asarray(model.observe(y, theta(vec, f"Model in {path}: observe()")))

    per_state = f"one value per state {model.states}"
    y = jnp.ones(n_states)
    call("y0", (n_states,), per_state, y0, typical, covs)
    call("rhs", (n_states,), per_state, rhs, typical, y)
    call("observe", (n_outputs,), f"one value per output {model.output_names}", observe, typical, y)
    if model.is_linear:
        linear = lambda vec: jnp.asarray(  # noqa: E731
            model.linear_system(theta(vec, f"Model in {path}: linear_system()"))
        )
        call("linear_system", (n_states, n_states), "a states x states matrix", linear, typical)


def model_source_hash(model: Model) -> str:
    """SHA-256 of the source file defining ``model`` (for provenance)."""
    path = getattr(model, "_source_path", None) or inspect.getsourcefile(type(model))
    data = Path(path).read_bytes() if path and Path(path).is_file() else repr(model).encode()
    return hashlib.sha256(data).hexdigest()
