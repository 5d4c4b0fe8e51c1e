"""reconciler: declarative GitOps for Gcore Everywhere Inference deployments."""

__version__ = "0.1.0"
