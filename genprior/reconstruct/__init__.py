"""genprior.reconstruct"""
