"""Transfer of a trained classification network to other image sets (the
paper's sections 3.2-3.3): features of a chosen layer and view, one linear SVM
per class, VOC classification AP or mean per-class accuracy."""
