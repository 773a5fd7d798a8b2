"""vidfilter.infer"""
