"""vidfilter.distributed"""
