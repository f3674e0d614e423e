"""Scoring: reading answers and turning records into figures.

- reading a reply: `answers` (the rules), `answer_scope`, `answer_tokens` (tokens, final-answer lines),
  `answer_vocab`;
- figures: `metrics` (the velm and anomalous protocols, usage), built from `label_scores` (outcomes,
  accuracy, F1, kappa, confusion, bootstrap); `gate_metrics`, `class_order` (position bias), `sample_counts`;
- decisions: `decisions` (policies and costs), `decision_report`;
- across runs: `leaderboard`, `compare` (`harness score`, predictions made elsewhere, is plugins/harness_imported).
"""
