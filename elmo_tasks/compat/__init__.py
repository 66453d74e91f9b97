"""Drop-in interfaces for code written against other ELMo libraries: ``tfhub`` (the TF-Hub module's
call signature) and ``allennlp`` (``Elmo``, ``batch_to_ids``, ``ElmoEmbedder``)."""
