"""Every ELMo model format users hold, read into the public ``options.json`` + ``weights.hdf5``.

One module per source format: ``tfhub`` (TF-Hub modules), ``bilm_tf`` (bilm-tf training
checkpoints), ``nlpl`` (NLPL repository zips); ``tf_bundle`` reads TensorFlow checkpoints without
TensorFlow and ``tf_elmo`` maps bilm-tf's variable names onto the public ones. ``convert`` detects
the format and is the one place a ``--model`` source becomes a model folder (``resolve_model_dir``).
"""
