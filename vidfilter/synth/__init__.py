"""vidfilter.synth"""
