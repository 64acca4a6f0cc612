"""The lab: synthetic populations on which any scheme can be run and measured."""
