"""Kubeflow Pipelines / Vertex AI: compile.py (KubeflowV2DagRunner -> .yaml / .json), commands.py
(`simsiam-tfx compile | kfp | vertex`) and the step image (Dockerfile)."""
