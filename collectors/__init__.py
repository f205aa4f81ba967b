"""Provider adapters and collector workers.

REST (Track A) and WebSocket (Track B) collectors turn broker answers into schema messages
(`observer.schema`) at the edge and push them onto the ingest bus; `kis_sim` is a local
simulator of the KIS protocols so that everything runs offline.
"""
