"""genprior.sampling"""
