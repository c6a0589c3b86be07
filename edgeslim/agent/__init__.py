"""The edge agent: subscribe → download → verify → load → smoke test → swap → ack | roll back.

Runs on the device with ONNX Runtime, paho-mqtt, requests and cryptography only: nothing in this
package imports torch, ultralytics, Prefect, MLflow or boto3 (a test holds it to that).
"""
