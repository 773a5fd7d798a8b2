"""vidfilter.train"""
