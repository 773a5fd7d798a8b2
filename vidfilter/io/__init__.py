"""vidfilter.io"""
