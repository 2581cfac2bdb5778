"""Collect soft labels of one's own: a study file, a local web app (`softlabels elicit serve`), SQLite storage,
and exports in the tables the pipeline reads (`softlabels elicit export` / `import`).

Modules: `study` (study file -> stimuli), `store` (SQLite, assignment), `validate` (answer checks), `server`
(HTTP), `export`, `importer` (chapter-3 input), `progress` (researcher's page), `cli`.
"""
