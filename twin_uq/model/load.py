"""Find and load physiological models: built-in ones by name, a user's file by path.

Built-in models live in the repository's ``models/`` folder (shipped inside the wheel as
``twin_uq/_library``). A model file is an ordinary Python module that defines exactly one
subclass of :class:`twin_uq.Model` (or several, with ``MODEL`` naming the one to use).
Built-in models are loaded by the same code path as a user's file. Every model returned,
whether from a file or passed in as a class or an instance, has passed
:func:`twin_uq.testing.check_model` (once per instance).
"""

from __future__ import annotations

import ast
import copyreg
import hashlib
import importlib.util
import inspect
import sys
from pathlib import Path

from twin_uq.model.base import Model
from twin_uq.model.check import ensure_checked
from twin_uq.model.errors import ModelCheckError, ModelLoadError

__all__ = [
    "ModelCheckError",
    "ModelLoadError",
    "library_dirs",
    "list_models",
    "load_model",
    "model_source_hash",
]


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
    """Built-in model names mapped to their one-line summaries.

    Reads the declarations only: listing does not run the checks (which compile each
    model's functions once); :func:`load_model` does, before a model is used.
    """
    files = _model_files()
    return {name: _import_file(files[name]).card.summary for name in sorted(files)}


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
    ModelCheckError
        (a :class:`ModelLoadError`) The model fails :func:`twin_uq.testing.check_model`;
        the message names the model and the problem.
    """
    if isinstance(name_or_path, Model):
        return ensure_checked(name_or_path)
    if isinstance(name_or_path, type) and issubclass(name_or_path, Model):
        return ensure_checked(name_or_path())
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
    return ensure_checked(_import_file(path))


def _import_file(path: Path) -> Model:
    """The model a file defines, instantiated but not yet checked (cached by source)."""
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
    try:
        model = chosen() if isinstance(chosen, type) else chosen
    except TypeError as err:  # a class that leaves out what a model must declare
        raise ModelLoadError(f"Model in {path}: {err}") from err
    if not isinstance(model, Model):
        raise ModelLoadError(
            f"Model file {path}: MODEL must be a twin_uq.Model subclass or instance."
        )
    model._source_path = str(path)
    _LOADED[cache_key] = model
    # The class lives in a module made from the file, which another process (a Dask
    # worker, a PyMC chain) cannot import by name: a copy travels as "load this file".
    copyreg.pickle(type(model), _reduce_file_model)
    return model


def _reduce_file_model(model: Model):
    """Pickle a model loaded from a file as a reload of that file (same source hash).

    Other instances of the same class (built with other arguments) pickle as usual.
    """
    path = model._source_path
    if path is not None and any(m is model for m in _LOADED.values()):
        return (load_model, (path,))
    return object.__reduce_ex__(model, 2)


def model_source_hash(model: Model) -> str:
    """SHA-256 of the source file defining ``model`` (for provenance)."""
    path = model._source_path or inspect.getsourcefile(type(model))
    data = Path(path).read_bytes() if path and Path(path).is_file() else repr(model).encode()
    return hashlib.sha256(data).hexdigest()
