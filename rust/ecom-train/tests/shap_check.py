"""TreeSHAP of a saved ecom XGBoost model by Python XGBoost and by shap, for tests/shap_python.rs.

Usage: python shap_check.py MODEL.json ROWS.json OUT.json
ROWS.json: {"cols": n, "x": [row-major float32 values]}.
OUT.json: {"xgboost_version", "shap_version", "margin": [...], "xgboost_contribs": [...],
           "shap_values": [...], "shap_expected_value": x}, contributions row-major with the bias last.
"""
import json
import sys

import numpy as np
import shap
import xgboost

model_path, rows_path, out_path = sys.argv[1:4]
rows = json.load(open(rows_path))
x = np.asarray(rows["x"], dtype=np.float32).reshape(-1, rows["cols"])
booster = xgboost.Booster(model_file=model_path)
m = xgboost.DMatrix(x)
contribs = booster.predict(m, pred_contribs=True)
margin = booster.predict(m, output_margin=True)
explainer = shap.TreeExplainer(booster)
values = explainer.shap_values(x)
json.dump(
    {
        "xgboost_version": xgboost.__version__,
        "shap_version": shap.__version__,
        "margin": margin.astype(float).tolist(),
        "xgboost_contribs": contribs.astype(float).ravel().tolist(),
        "shap_values": np.asarray(values, dtype=float).ravel().tolist(),
        "shap_expected_value": float(np.asarray(explainer.expected_value).ravel()[0]),
    },
    open(out_path, "w"),
)
