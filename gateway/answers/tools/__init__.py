"""Tool calling, emulated in the prompt: the arena's models have no tools in its protocol.

A request's tools become a compact contract in the transcript (`contract`) that shows the model
how to call one in a delimited form; the answer is read as it streams (`detector`) and each call
found is parsed leniently and checked against its tool's schema (`calls`). Every API hands its
tools over as the neutral `definitions`.
"""
