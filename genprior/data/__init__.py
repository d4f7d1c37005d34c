"""genprior.data"""
