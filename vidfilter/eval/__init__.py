"""vidfilter.eval"""
