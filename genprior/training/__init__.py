"""genprior.training"""
