"""Scoring: reading answers and turning records into figures.

- reading a reply: `answers` (the rules), `answer_scope`, `answer_tokens`, `answer_final`, `answer_vocab`;
- figures: `metrics` (the velm and anomalous protocols), built from `outcomes` (prediction keys,
  attribution), `label_scores` (accuracy, F1, kappa, confusion), `intervals` (bootstrap) and `usage`;
  `gate_metrics`, `class_order` (position bias), `sample_counts`, `figure_notes`;
- decisions: `decisions` (policies and costs), `decision_report`;
- across runs: `leaderboard`, `compare`, and `imported` (predictions made elsewhere, `harness score`;
  its files read by `prediction_files`).
"""
