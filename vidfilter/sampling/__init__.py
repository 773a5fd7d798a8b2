"""vidfilter.sampling"""
