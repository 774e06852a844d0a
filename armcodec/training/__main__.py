from armcodec.training.loop import main

main()
