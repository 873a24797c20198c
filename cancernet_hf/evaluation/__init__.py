"""Evaluation: scores at both label levels, calibration, reports with plots, and prediction.

scores.py       classification_scores (Trainer/Accelerate metrics) on the local `evaluate` modules in metrics/
calibration.py  NLL, ECE + reliability bins, temperature fit, risk-coverage/AURC
report.py       evaluate_model -> metrics.json, predictions.csv and plots.py's PNGs
predict.py      predict_images for files and folders (member: stock pipeline; ensemble: its own pipeline)
Nothing is imported here, so `import cancernet_hf.evaluation.scores` stays light.
"""
