"""The run pipeline: from a config to records on disk.

- the config and its flags: `run_config`, `run_options`;
- the run: `plan` (everything resolved once from the config and checked), `stages` (each step as a function of
  its inputs), `runner` (the local executor: runs the stages, writes records), `run_header`
  (run.json's header), `run_records` (one record per sample and model), `run_identity` (the options
  hash), `run_folder`, `resume`;
- asking the models: `dispatch` (concurrency, retries, rate limits), `failfast`, `cache` (the response
  cache; `harness cache` is plugins/harness_cachetools), `prompt_memo`, `pricing`, `redact`;
- the data around a prompt: `sampling` (reference and subsets), `prompt_record` (every prompt's
  images kept), `class_file` (users' class descriptions; `harness classes` is plugins/harness_classfiles),
  `data_location`, `mask_notes`, `paths`.
"""
