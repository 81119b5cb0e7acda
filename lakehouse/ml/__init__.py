"""Machine learning inside the pipeline: demand forecasting and fraud scoring, tracked and registered in MLflow."""
