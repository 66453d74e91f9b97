"""The open biLM pretraining corpus that ``elmo-tasks data corpus`` builds.

- :mod:`.catalog`: the text sources (packages, licences, readers); one reader module per format:
  :mod:`.gcide`, :mod:`.books`, :mod:`.wordnet_glosses`, :mod:`.sword`, :mod:`.wikitext`,
  :mod:`.docs` (with :mod:`.html_text`, :mod:`.pod_text`) and the prose filter :mod:`.prose`;
- :mod:`.exclusions`: the evaluation text kept out;
- :mod:`.pipeline`: paragraphs -> sentences -> tokens -> filters -> dedup -> held-out split -> files.
"""
