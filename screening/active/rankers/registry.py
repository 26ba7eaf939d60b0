"""The named rankers, views and classifiers, and how a ranker is made from a name and `--ranker_options`.

A view turns every record of the search into a feature matrix (no labels used); a classifier (a scikit-learn
estimator) is refitted on the labelled rows at every retrain; a ranker joins them (or, like `finetune`, is one class
of its own). Each is registered under a name:

    register_view("tfidf")(TfidfView)                       # or as a class decorator
    register_classifier("svm", LinearSVC, random_state=0)   # the estimator and its defaults here
    register_ranker("tfidf_svm", view="tfidf", classifier="svm", options={"classifier.C": 0.11})
    register_ranker("finetune")(FinetuneRanker)             # a ranker class: its __init__ parameters are its options

A ranker's hyperparameters are the scikit-learn nested parameters of the ranker object, written with dots:
`view.features_weight`, `classifier.C`, `weighting.include_weight` (`epochs` for finetune).
"""

import ast
from dataclasses import dataclass, field

from sklearn.base import clone

from ...errors import ScreeningInputError
from .weighting import ClassWeighting

DEFAULT_RANKER = "tfidf_features"
"""The ranker `--ranker` defaults to (chosen by benchmarks/screening.md)."""

VIEWS = {}
CLASSIFIERS = {}
RANKERS = {}

# the metadata dicts of RankerArguments' fields: dataclasses keep a live view of them, so the help text that
# HfArgumentParser reads always lists every registered name, including those registered after import
HELP = {"ranker": {"help": ""}, "view": {"help": ""}, "classifier": {"help": ""}}


@dataclass(frozen=True)
class RankerSpec:
    """A registered ranker: a class (`make`), or a registered view + classifier with `options` set on them."""

    name: str
    make: type | None = None
    view: str | None = None
    classifier: str | None = None
    options: dict = field(default_factory=dict)
    description: str = ""


def _first_sentence(text):
    return " ".join((text or "").split()).split(". ")[0].rstrip(".")


def register_view(name):
    """Class decorator: register a view class (defaults in its `__init__`) under `name`."""

    def add(cls):
        VIEWS[name] = cls
        _refresh_help()
        return cls

    return add


def register_classifier(name, estimator, description="", **defaults):
    """Register a scikit-learn classifier class under `name`, made with `defaults` (any other parameter keeps the
    estimator's own default). Its score is `predict_proba[:, 1]`, or `decision_function` where it has no
    probabilities."""
    CLASSIFIERS[name] = (estimator, defaults, description or _first_sentence(estimator.__doc__))
    _refresh_help()
    return estimator


def register_ranker(name, make=None, *, view=None, classifier=None, options=None, description=""):
    """Register a ranker under `name`: a view and a classifier by their registered names with `options`
    ({"classifier.C": 0.11, ...}), or a ranker class `make` (also as a class decorator: `@register_ranker(name)`)."""
    if make is None and view is None:
        return lambda cls: register_ranker(name, cls, options=options, description=description)
    if (make is not None and (view or classifier)) or (make is None and not (view and classifier)):
        raise ValueError(f"register_ranker({name!r}): give a ranker class, or both a view and a classifier")
    description = description or _first_sentence(getattr(make, "__doc__", ""))
    RANKERS[name] = RankerSpec(name, make, view, classifier, dict(options or {}), description)
    _refresh_help()
    return make


def make_view(name):
    return VIEWS[_known(name, VIEWS, "--view")]()


def make_classifier(name):
    estimator, defaults, _ = CLASSIFIERS[_known(name, CLASSIFIERS, "--classifier")]
    return estimator(**defaults)


def _known(name, registry, flag):
    if name not in registry:
        raise ScreeningInputError(f"{flag} must be one of {', '.join(registry)}; got {name!r}")
    return name


def parse_options(text):
    """`"classifier.C=0.5,view.features_weight=0.2"` as {"classifier.C": 0.5, ...}: numbers, True/False/None and
    Python literals are read as such, anything else is a string. A mapping (from a .json/.yaml arguments file) is
    taken as it is."""
    if isinstance(text, dict):
        return dict(text)
    options = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ScreeningInputError(f"--ranker_options: expected KEY=VALUE, got {item!r}")
        options[key.strip()] = _literal(value.strip())
    return options


def _literal(value):
    spelled = {"true": True, "false": False, "none": None, "null": None}
    if value.lower() in spelled:
        return spelled[value.lower()]
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def hyperparameters(estimator):
    """The settable hyperparameters of `estimator` (a ranker, view or classifier) as {"view.min_df": 1, ...}: its
    nested scikit-learn parameters, written with dots, without the parts that are themselves estimators."""
    return {
        key.replace("__", "."): value
        for key, value in estimator.get_params(deep=True).items()
        if not hasattr(value, "get_params")
    }


def set_options(ranker, options, source="--ranker_options"):
    """Set `options` ({"classifier.C": 0.5, ...}) on `ranker`; an unknown key, a number or a flag where the default
    is not one, or a value scikit-learn's own checks refuse, is a one-line ScreeningInputError naming the key."""
    valid = hyperparameters(ranker)
    for key, value in options.items():
        if key not in valid:
            raise ScreeningInputError(f"{source}: unknown key {key!r}; valid keys: {', '.join(sorted(valid))}")
        if value is not None and _kind(valid[key]) not in (None, _kind(value)):
            raise ScreeningInputError(f"{source}: {key} must be like {valid[key]!r}; got {value!r}")
    ranker.set_params(**{key.replace(".", "__"): value for key, value in options.items()})
    for part in [ranker, *ranker.get_params(deep=True).values()]:
        if hasattr(part, "_parameter_constraints"):  # scikit-learn's estimators check their parameters at fit
            try:
                part._validate_params()
            except (ValueError, TypeError) as err:
                raise ScreeningInputError(f"{source}: {' '.join(str(err).split())}") from None
    return ranker


def _kind(value):
    """bool or number for a flag or a number (a value of another kind is left to scikit-learn's own checks)."""
    if isinstance(value, bool):
        return bool
    return float if isinstance(value, (int, float)) else None


def make_ranker(name=DEFAULT_RANKER, view=None, classifier=None, options=None):
    """The unfitted ranker `name` (its registered options set), with its view and/or classifier replaced by the
    registered ones named (their own defaults then apply), then `options` (from --ranker_options) set on it."""
    from .linear import LinearRanker

    spec = RANKERS[_known(name, RANKERS, "--ranker")]
    if spec.make is not None:
        if view or classifier:
            raise ScreeningInputError(f"--view/--classifier: ranker {name} is not a view + classifier")
        ranker = spec.make()
        preset = spec.options
    else:
        ranker = LinearRanker(make_view(view or spec.view), make_classifier(classifier or spec.classifier))
        replaced = {part for part, new in (("view", view), ("classifier", classifier)) if new}
        preset = {k: v for k, v in spec.options.items() if k.split(".")[0] not in replaced}
    set_options(ranker, preset, f"ranker {name}")
    return set_options(ranker, options or {})


def _shown(params, prefix=""):
    return ", ".join(f"{prefix}{key}={value!r}" for key, value in params.items())


def describe_rankers():
    lines = []
    for spec in RANKERS.values():
        if spec.make is not None:
            parts = _shown({**hyperparameters(spec.make()), **spec.options})
        else:
            parts = f"view {spec.view} + classifier {spec.classifier}" + (
                f", {_shown(spec.options)}" if spec.options else ""
            )
        lines.append(f"{spec.name}: {spec.description} [{parts}]")
    return "; ".join(lines)


def describe_views():
    return "; ".join(f"{name} [{_shown(hyperparameters(cls()))}]" for name, cls in VIEWS.items())


def describe_classifiers():
    return "; ".join(
        f"{name}: {description}, {estimator.__name__} [{_shown(hyperparameters(clone(estimator(**defaults))))}]"
        for name, (estimator, defaults, description) in CLASSIFIERS.items()
    )


def _refresh_help():
    HELP["ranker"]["help"] = (
        "A registered ranker (its hyperparameters, set with --ranker_options, in brackets; every view + classifier "
        f"ranker also has the weighting of the includes: {_shown(hyperparameters(ClassWeighting()), 'weighting.')}, "
        "the includes' weight beyond class balance): " + describe_rankers()
    )
    HELP["view"]["help"] = (
        "Replace the ranker's view by a registered one (its defaults in brackets; set them with --ranker_options "
        "view.KEY=VALUE): " + describe_views()
    )
    HELP["classifier"]["help"] = (
        "Replace the ranker's classifier by a registered one (scikit-learn; its parameters in brackets, set them "
        "with --ranker_options classifier.KEY=VALUE): " + describe_classifiers()
    )
