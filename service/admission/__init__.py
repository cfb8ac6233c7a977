"""Admission: every check a submitted job spec passes before a job row exists. What a spec
may name (``allowed``: model classes, callbacks, data formats), the spec's fields and
defaults as pydantic models (``specmodel``, ``spec_callbacks``, their field
checks in ``spec_fields``; ``spec.normalize`` runs them), refusing Keras JSON that could run code
(``spec_safety``), building and summarizing the model in Keras safe mode (``modelspec``),
size limits (``limits``), data-location rules (``policy``), a look inside the data files
(``datahead``, ``tablehead``) and whether they fit the model's inputs, outputs and losses
(``shapes``, ``targets``, ``sampleweights``); ``submit.admit`` runs them all."""
