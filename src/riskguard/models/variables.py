"""The ``model.*`` variables the model stage binds for rules, with their CEL types (no imports, so the
strategy compiler can read them without loading LightGBM)."""

#: CEL declarations of what the model stage binds, for strategies that reference a model (``model:``).
DECLARATIONS: dict[str, str] = {
    "model.score": "double",  # calibrated probability of fraud in percent, 0-100; unbound when not scored
    "model.available": "bool",  # the model scored this event (its type is one the model was trained on)
    "model.name": "string",
    "model.version": "int",
}
