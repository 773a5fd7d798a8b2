"""vidfilter.models"""
