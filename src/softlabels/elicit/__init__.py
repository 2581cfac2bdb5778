"""Collect soft labels of one's own: a study file, a small web app (`softlabels elicit serve`, Starlette under
uvicorn, to run locally or behind a reverse proxy), SQLite storage, signed participant links (`softlabels elicit
links`), and exports in the tables the pipeline reads (`softlabels elicit export` / `import`).

Modules: `study` (study file -> stimuli), `store` (SQLite, assignment, reservation caps), `validate` (answer
checks), `access` (signed links), `server` (HTTP), `export`, `importer` (chapter-3 input), `progress`
(researcher's page), `cli`.
"""
