/*
 * ec1-krun: the libkrun backends' helper process. ec1_run() on libkrun exec's it with the
 * configuration on fd 3 and a status pipe on fd 4 (src/backend/krun_helper.c); it starts the VM
 * with krun_start_enter, which exits it with the guest's status. Not meant to be run by hand.
 */
int ec1_krun_helper_main(int argc, char **argv);

int main(int argc, char **argv)
{
	return ec1_krun_helper_main(argc, argv);
}
