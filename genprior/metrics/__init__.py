"""genprior.metrics"""
