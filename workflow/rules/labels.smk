# Rules of the labels stage.
